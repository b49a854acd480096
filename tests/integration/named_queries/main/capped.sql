-- @description Many rows, capped by the query's own max_rows
-- @max_rows 3
-- @timeout_ms 5000
SELECT range AS i FROM range(100)
