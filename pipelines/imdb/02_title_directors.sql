-- Per title, the people a profile's collaborator panels need: the directors with their names
-- (from title_crew, complete in the real dumps, unlike the principals), carried by
-- person_filmography so "directors worked with" reads only one person's rows, and the billed
-- cast (actors, actresses, self), one row per credit sorted by tconst, which "co-stars" joins to
-- the person's titles. Director lists are built unordered and sorted afterwards (by nconst): an
-- ORDER BY inside list() buffers every group in memory and cannot spill.
CREATE OR REPLACE TABLE title_directors AS
WITH d AS (
    SELECT tconst, unnest(string_split(directors, ',')) AS nconst
    FROM title_crew
    WHERE directors IS NOT NULL
)
SELECT d.tconst,
       list_sort(list({'nconst': d.nconst, 'name': n.primaryName})) AS directors
FROM d
LEFT JOIN name_basics n USING (nconst)
GROUP BY d.tconst
ORDER BY d.tconst;

-- The cast stays flat (one row per billed credit, sorted by title): a list per title here
-- needs every group's list in memory at once and ran out of a 7 GB limit at scale 1, while a
-- sort spills to disk.
CREATE OR REPLACE TABLE title_cast AS
SELECT p.tconst, p.nconst, n.primaryName AS name
FROM title_principals p
LEFT JOIN name_basics n USING (nconst)
WHERE p.category IN ('actor', 'actress', 'self')
ORDER BY p.tconst, p.nconst;
