-- @description Collaborators: the directors a person worked with, most shared titles first
-- @roles public
-- @cache_ttl 3600
-- @max_rows 100
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^nm[0-9]+$
-- @param limit INTEGER default=20 min=1 max=100
WITH d AS (
    SELECT tconst, unnest(directors) AS director
    FROM person_filmography
    WHERE nconst = $id
)
SELECT director.nconst AS nconst, director.name AS primaryName,
       count(DISTINCT tconst) AS titles
FROM d
WHERE director.nconst <> $id
GROUP BY director.nconst, director.name
ORDER BY titles DESC, nconst
LIMIT $limit
