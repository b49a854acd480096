-- @description Collaborators: co-stars (billed actors, actresses, self) of the titles a person worked on, most shared titles first
-- @roles public
-- @cache_ttl 3600
-- @max_rows 100
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^nm[0-9]+$
-- @param limit INTEGER default=20 min=1 max=100
-- The person's titles are one range of person_filmography; their casts are looked up in
-- title_cast (one row per title, sorted by tconst).
WITH mine AS (
    SELECT DISTINCT tconst FROM person_filmography WHERE nconst = $id
),
c AS (
    SELECT t.tconst, unnest(t.cast_members) AS m
    FROM title_cast t
    JOIN mine USING (tconst)
)
SELECT m.nconst AS nconst, m.name AS primaryName, count(DISTINCT tconst) AS titles
FROM c
WHERE m.nconst <> $id
GROUP BY m.nconst, m.name
ORDER BY titles DESC, nconst
LIMIT $limit
