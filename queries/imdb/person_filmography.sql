-- @description Person profile: filmography (up to 5000 credits), oldest first
-- @roles public
-- @cache_ttl 3600
-- @max_rows 5000
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^nm[0-9]+$
-- @param limit INTEGER default=5000 min=1 max=5000
SELECT tconst, primaryTitle, titleType, startYear, category, job, characters, averageRating,
       numVotes, genres
FROM person_filmography
WHERE nconst = $id
ORDER BY startYear NULLS LAST, tconst, ordering, category
LIMIT $limit
