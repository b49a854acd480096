#!/usr/bin/env bash
# The demo: `make demo` (tools/demo.sh DIR PORT). On first run creates DIR/sample.duckdb with
# `duckgate exec` (customers, products, 100k orders with dates/decimals/strings/NULLs, a view),
# and DIR/imdb.duckdb: `duckgate gen imdb` at scale $SCALE (default 0.01; SCALE=1 is the full
# 230M-row case) built with pipelines/imdb (docs/pipeline.md). Prints a few example requests,
# then serves DIR on 127.0.0.1:PORT with the named queries of queries/ until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-demo-data}
PORT=${2:-8080}
BIN=${DUCKGATE_BIN:-build/duckgate}

if [ ! -x "$BIN" ]; then
    echo "demo: $BIN not found; run 'make build' first" >&2
    exit 1
fi
mkdir -p "$DIR"

if [ ! -f "$DIR/sample.duckdb" ]; then
    echo "demo: creating $DIR/sample.duckdb"
    # Built under a name the server does not serve, then renamed: a half-built file is never
    # picked up.
    tmp="$DIR/sample.tmp-$$"
    rm -f "$tmp" "$tmp.wal"
    "$BIN" exec "$tmp" "
CREATE TABLE customers AS
SELECT i::INTEGER AS customer_id,
       'Customer ' || i AS name,
       (['DE', 'FR', 'US', 'JP', 'BR', 'IN'])[1 + (i % 6)::INTEGER] AS country,
       DATE '2020-01-01' + (i % 1500)::INTEGER AS signup_date,
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'customer' || i || '@example.com' END AS email
FROM range(1, 1001) t(i);

CREATE TABLE products AS
SELECT i::INTEGER AS product_id,
       'Product ' || i AS name,
       (['books', 'games', 'tools', 'food'])[1 + (i % 4)::INTEGER] AS category,
       CAST(1 + (i * 37 % 20000) / 100.0 AS DECIMAL(10, 2)) AS price
FROM range(1, 201) t(i);

CREATE TABLE orders AS
SELECT i AS order_id,
       (1 + hash(i) % 1000)::INTEGER AS customer_id,
       (1 + hash(i * 7) % 200)::INTEGER AS product_id,
       DATE '2023-01-01' + (i % 730)::INTEGER AS order_date,
       TIMESTAMP '2023-01-01 00:00:00' + to_seconds(i * 631) AS created_at,
       (1 + i % 5)::INTEGER AS quantity,
       CAST((hash(i * 13) % 100000) / 100.0 AS DECIMAL(12, 2)) AS amount,
       (['new', 'paid', 'shipped', 'delivered', 'returned'])[1 + (i % 5)::INTEGER] AS status,
       CASE WHEN i % 10 = 0 THEN 'SPRING' || (i % 3) ELSE NULL END AS coupon
FROM range(1, 100001) t(i);

CREATE VIEW daily_revenue AS
SELECT order_date, count(*) AS orders, sum(amount) AS revenue
FROM orders GROUP BY order_date;
"
    rm -f "$tmp.wal"
    mv "$tmp" "$DIR/sample.duckdb"
fi

# The movie explorer: generated, then built by the pipeline (both write FILE.next and rename,
# so the served name only ever holds a complete database). A different SCALE regenerates.
SCALE=${SCALE:-0.01}
if [ ! -f "$DIR/imdb.duckdb" ] || [ "$(cat "$DIR/imdb.scale" 2>/dev/null)" != "$SCALE" ]; then
    echo "demo: generating $DIR/imdb.duckdb (scale $SCALE) and building pipelines/imdb"
    "$BIN" gen imdb --scale "$SCALE" --out "$DIR/imdb.build"
    "$BIN" build "$DIR/imdb.build" pipelines/imdb
    mv "$DIR/imdb.build" "$DIR/imdb.duckdb"
    echo "$SCALE" >"$DIR/imdb.scale"
fi

URL="http://127.0.0.1:$PORT"
cat <<MSG

duckgate demo: serving $DIR on $URL (Ctrl-C stops)

  curl -s $URL/api/databases

  curl -s $URL/api/query/sample \\
       -d '{"sql": "SELECT status, count(*) AS n, sum(amount) AS revenue FROM orders GROUP BY status ORDER BY n DESC"}'

  curl -s '$URL/api/query/sample?sql=SELECT+*+FROM+daily_revenue+ORDER+BY+order_date+LIMIT+5&format=csv'

  curl -sN -H 'Accept: application/x-ndjson' $URL/api/query/sample \\
       -d '{"sql": "SELECT * FROM orders WHERE customer_id = \$1 ORDER BY order_date", "params": [42]}'

  curl -s $URL/api/q/imdb                                   # the named queries
  curl -s '$URL/api/q/imdb/search_people?q=jo&smart=true'
  curl -s '$URL/api/q/imdb/overview'

MSG
exec "$BIN" serve --data-dir "$DIR" --listen "127.0.0.1:$PORT" --queries-dir queries --auth off
