-- @description Title drill-down: the title with its rating and directors
-- @roles public
-- @cache_ttl 3600
-- @max_rows 1
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^tt[0-9]+$
SELECT t.tconst, t.titleType, t.primaryTitle, t.originalTitle, t.isAdult, t.startYear,
       t.endYear, t.runtimeMinutes, t.genres, t.averageRating, t.numVotes,
       COALESCE(d.directors, []) AS directors
FROM titles t
LEFT JOIN title_directors d ON d.tconst = t.tconst AND d.tconst = $id
WHERE t.tconst = $id
