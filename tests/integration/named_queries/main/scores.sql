-- @description Rows at or above a score, since a time
-- @param min_score DOUBLE required min=0 max=1000
-- @param after TIMESTAMP default=NULL
SELECT count(*) AS n FROM t
WHERE score >= $min_score AND ($after IS NULL OR CAST(d AS TIMESTAMP) > $after)
