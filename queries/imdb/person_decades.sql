-- @description Person profile: credits, titles and average rating per decade
-- @roles public
-- @cache_ttl 3600
-- @max_rows 20
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^nm[0-9]+$
SELECT era, credits, titles, avg_rating
FROM person_decades
WHERE nconst = $id
ORDER BY era
