#!/usr/bin/env bash
# Installs everything duckgate needs to build, test and run, idempotently:
# Debian packages through apt-get and DuckDB's official build through npm,
# verified against pinned checksums into the ignored third_party/ folder.
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_VERSION=1.4.4
DUCKDB_LIB_PKG="@duckdb/node-bindings-linux-x64@${DUCKDB_VERSION}-r.4"
DUCKDB_LIB_SHA256=732fac4dc6b8f198870b9c4bb6ddf13544466daca00ad28ba2f1d80de5d7aa4b
DUCKDB_HDR_PKG="duckdb@${DUCKDB_VERSION}"
DUCKDB_HDR_SHA256=5bb967dcbcd517670ba5f169f238fb9d6787e53752c60ebe24386169d76941ed
DEST=third_party/duckdb

DEB_PACKAGES=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
    libmicrohttpd-dev libjansson-dev libzstd-dev libbrotli-dev zlib1g-dev libssl-dev
    libinih-dev libcmocka-dev libcurl4-openssl-dev python3 python3-pytest python3-requests
    curl ca-certificates wrk hyperfine zstd brotli gzip prometheus)

log() { printf 'setup: %s\n' "$*"; }

install_debs() {
    local missing=()
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    # The machine may carry its own Node.js build with npm inside; Debian's npm conflicts with it.
    command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
    if [ ${#missing[@]} -eq 0 ]; then
        log "Debian packages present"
        return
    fi
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

fetch_npm() { # package sha256 -> path of the verified tarball
    local pkg=$1 sum=$2 tmp tgz
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null 2>&1) || { echo "setup: npm pack $pkg failed" >&2; exit 1; }
    tgz=$(ls "$tmp"/*.tgz)
    echo "$sum  $tgz" | sha256sum -c --quiet - || { echo "setup: checksum mismatch for $pkg" >&2; exit 1; }
    echo "$tgz"
}

install_duckdb() {
    if [ -f "$DEST/.version" ] && [ "$(cat "$DEST/.version")" = "$DUCKDB_VERSION-$DUCKDB_LIB_SHA256" ]; then
        log "DuckDB $DUCKDB_VERSION present"
        return
    fi
    log "fetching DuckDB $DUCKDB_VERSION from npm"
    local lib hdr stage
    lib=$(fetch_npm "$DUCKDB_LIB_PKG" "$DUCKDB_LIB_SHA256")
    hdr=$(fetch_npm "$DUCKDB_HDR_PKG" "$DUCKDB_HDR_SHA256")
    stage=$(mktemp -d)
    tar -xzf "$lib" -C "$stage" package/libduckdb.so
    tar -xzf "$hdr" -C "$stage" package/src/duckdb/src/include/duckdb.h
    mkdir -p "$DEST.tmp/lib" "$DEST.tmp/include"
    mv "$stage/package/libduckdb.so" "$DEST.tmp/lib/"
    mv "$stage/package/src/duckdb/src/include/duckdb.h" "$DEST.tmp/include/"
    echo "$DUCKDB_VERSION-$DUCKDB_LIB_SHA256" > "$DEST.tmp/.version"
    rm -rf "$DEST" "$stage" "$(dirname "$lib")" "$(dirname "$hdr")"
    mv "$DEST.tmp" "$DEST"
    log "DuckDB installed in $DEST"
}

install_test_readers() {
    # apache-arrow (JavaScript) reads our Arrow IPC output in tests: an implementation we share
    # no code with. Pinned by tests/js/package-lock.json (integrity hashes).
    if [ -d tests/js/node_modules/apache-arrow ] &&
        [ tests/js/node_modules/.package-lock.json -nt tests/js/package-lock.json ]; then
        log "test readers present"
        return
    fi
    log "installing test readers (npm ci in tests/js)"
    (cd tests/js && npm ci --silent --no-audit --no-fund >/dev/null)
}

install_debs
install_duckdb
install_test_readers
