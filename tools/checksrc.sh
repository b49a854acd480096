#!/usr/bin/env bash
# Source rules a compiler does not enforce: banned unsafe calls, DuckDB only in src/db/,
# no absolute machine paths. Exits non-zero with file:line for each violation.
set -u
cd "$(dirname "$0")/.."
fail=0
report() { echo "checksrc: $*"; fail=1; }

files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'fuzz/*.c' 'bench/*.c' 2>/dev/null)
[ -n "$files" ] || files=$(find src tests fuzz bench -name '*.[ch]' 2>/dev/null)

for f in $files; do
    while IFS= read -r hit; do
        report "$f:$hit: banned function (use snprintf/dg_buf/strtol-style checked parsing)"
    done < <(grep -nE '(^|[^_a-zA-Z0-9])(sprintf|vsprintf|strcpy|strcat|atoi|atol|gets)[[:space:]]*\(' "$f" | cut -d: -f1)
    case "$f" in
        src/db/*|tests/unit/db/*|bench/*|fuzz/*) ;;
        *)
            while IFS= read -r hit; do
                report "$f:$hit: duckdb_ API outside src/db/"
            done < <(grep -nE '(^|[^_a-zA-Z0-9])duckdb_[a-z_]+[[:space:]]*\(|#include[[:space:]]*[<"]duckdb\.h' "$f" | cut -d: -f1)
            ;;
    esac
done
while IFS= read -r hit; do
    report "$hit: absolute machine path"
done < <(git grep -n -I -E '/(work|root|home)/[a-z]' -- ':!*.md' ':!tools/checksrc.sh' 2>/dev/null)

if command -v clang-format >/dev/null 2>&1 && [ "${DG_CHECK_FORMAT:-0}" = 1 ]; then
    for f in $files; do
        clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || report "$f: not clang-formatted (make format)"
    done
fi
[ $fail -eq 0 ] && echo "checksrc: ok"
exit $fail
