-- @description Titles similar to a title by Jaccard similarity of their genre sets, most voted first among equally similar
-- @roles public
-- @cache_ttl 3600
-- @max_rows 100
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^tt[0-9]+$
-- @param limit INTEGER default=20 min=1 max=100
WITH s AS (
    SELECT set_id FROM title_genre_set WHERE tconst = $id
),
sets AS (
    SELECT g.set_b, g.jaccard
    FROM genre_set_similarity g
    WHERE g.set_a = (SELECT set_id FROM s)
)
SELECT p.tconst, p.primaryTitle, p.titleType, p.startYear, p.genres, sets.jaccard,
       p.averageRating, p.numVotes
FROM sets
JOIN similar_pool p ON p.set_id = sets.set_b
WHERE p.tconst <> $id
ORDER BY sets.jaccard DESC, p.numVotes DESC, p.tconst
LIMIT $limit
