-- Title similarity by Jaccard on genre sets. There are few distinct genre sets (at most 3,682
-- sets of one to three of the 28 genres), so similarity is precomputed between sets, and each
-- set keeps a pool of its 50 most voted titles: "similar titles" is then two small lookups.
CREATE OR REPLACE TABLE genre_sets AS
SELECT row_number() OVER (ORDER BY genres) AS set_id, genres
FROM (SELECT DISTINCT genre_list AS genres FROM titles WHERE len(genre_list) > 0);

CREATE OR REPLACE TABLE title_genre_set AS
SELECT t.tconst, s.set_id
FROM titles t
JOIN genre_sets s ON s.genres = t.genre_list
ORDER BY t.tconst;

-- Pairs that share a genre, from a join on the exploded sets (|A n B| = matching genres).
CREATE OR REPLACE TABLE genre_set_similarity AS
WITH g AS (
    SELECT set_id, len(genres) AS n, unnest(genres) AS genre FROM genre_sets
),
pairs AS (
    SELECT a.set_id AS set_a, b.set_id AS set_b, any_value(a.n) AS na, any_value(b.n) AS nb,
           count(*) AS shared
    FROM g a
    JOIN g b USING (genre)
    GROUP BY a.set_id, b.set_id
)
SELECT set_a, set_b, round(shared::DOUBLE / (na + nb - shared), 4) AS jaccard
FROM pairs
QUALIFY row_number() OVER (PARTITION BY set_a ORDER BY jaccard DESC, set_b) <= 50
ORDER BY set_a, jaccard DESC, set_b;

CREATE OR REPLACE TABLE similar_pool AS
SELECT s.set_id, t.tconst, t.primaryTitle, t.titleType, t.startYear, t.genres, t.averageRating,
       t.numVotes
FROM titles t
JOIN title_genre_set s USING (tconst)
WHERE t.numVotes > 0
QUALIFY row_number() OVER (PARTITION BY s.set_id ORDER BY t.numVotes DESC, t.tconst) <= 50
ORDER BY s.set_id, t.numVotes DESC, t.tconst;
