-- Denormalised person x title credits, sorted by person: one person's rows are one contiguous
-- range, so a lookup by nconst reads a handful of row groups (zone maps on nconst). Each row
-- carries its title's directors (02_title_directors.sql) for "directors worked with". The cast
-- is not carried: at about five names per credit it would multiply the table's size and its
-- sort; co-stars join the person's few titles to title_cast instead.
CREATE OR REPLACE TABLE person_filmography AS
SELECT p.nconst, n.primaryName, p.tconst, t.primaryTitle, t.titleType, t.startYear, t.era,
       p.category, p.job, p.characters, p.ordering, t.averageRating,
       COALESCE(t.numVotes, 0) AS numVotes, t.genres,
       COALESCE(d.directors, []) AS directors
FROM title_principals p
LEFT JOIN name_basics n USING (nconst)
LEFT JOIN titles t USING (tconst)
LEFT JOIN title_directors d USING (tconst)
ORDER BY p.nconst;
