-- @description Collaborators: co-stars (billed actors, actresses, self) of the titles a person worked on, most shared titles first
-- @roles public
-- @cache_ttl 3600
-- @max_rows 100
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^nm[0-9]+$
-- @param limit INTEGER default=20 min=1 max=100
-- The person's titles are one range of person_filmography; their casts are looked up in
-- title_cast (one row per billed credit, sorted by tconst).
WITH mine AS (
    SELECT DISTINCT tconst FROM person_filmography WHERE nconst = $id
)
SELECT c.nconst AS nconst, c.name AS primaryName, count(DISTINCT c.tconst) AS titles
FROM title_cast c
JOIN mine USING (tconst)
WHERE c.nconst <> $id
GROUP BY c.nconst, c.name
ORDER BY titles DESC, nconst
LIMIT $limit
