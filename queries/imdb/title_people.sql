-- @description Title drill-down: the people credited on a title, in billing order
-- @roles public
-- @cache_ttl 3600
-- @max_rows 500
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^tt[0-9]+$
SELECT ordering, nconst, primaryName, category, job, characters
FROM title_credits
WHERE tconst = $id
ORDER BY ordering, nconst, category
LIMIT 500
