-- Credits by title (drill-down, co-stars): sorted by tconst so one title's people are one range.
CREATE OR REPLACE TABLE title_credits AS
SELECT p.tconst, p.ordering, p.nconst, n.primaryName, p.category, p.job, p.characters
FROM title_principals p
LEFT JOIN name_basics n USING (nconst)
ORDER BY p.tconst;
