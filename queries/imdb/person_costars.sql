-- @description Collaborators: co-stars (billed actors, actresses, self) over the person's 50 most voted titles, most shared titles first
-- @roles public
-- @cache_ttl 3600
-- @max_rows 100
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^nm[0-9]+$
-- @param limit INTEGER default=20 min=1 max=100
-- The person's titles are one range of person_filmography; their casts are looked up in
-- title_cast (one row per billed credit, sorted by tconst). Each title costs about one row group
-- of title_cast (the join hands the scan its keys at run time). Beyond 50 keys (DuckDB's
-- dynamic_or_filter_threshold) the scan gets only a min/max range and reads most of the table:
-- at scale 1 a prolific person ran past the 2 s deadline. So the 50 most voted titles count.
WITH mine AS (
    SELECT tconst FROM person_filmography WHERE nconst = $id
    GROUP BY tconst
    ORDER BY max(numVotes) DESC, tconst
    LIMIT 50
)
SELECT c.nconst AS nconst, c.name AS primaryName, count(DISTINCT c.tconst) AS titles
FROM title_cast c
JOIN mine USING (tconst)
WHERE c.nconst <> $id
GROUP BY c.nconst, c.name
ORDER BY titles DESC, nconst
LIMIT $limit
