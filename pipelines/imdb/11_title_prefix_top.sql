-- Type-ahead for short title prefixes, like people_prefix_top: for every prefix of one to four
-- characters, the 100 most voted distinct titles, for all titles and for rated ones only
-- (smart). Filters (era, genre, minimum votes) and longer prefixes use the range scan of
-- search_titles.
-- Like people_prefix_top, only keys and numbers are grouped and ranked; the displayed columns
-- are joined from titles for the winners at the end.
CREATE OR REPLACE TABLE title_prefix_top AS
WITH base AS (
    SELECT DISTINCT left(name_norm, 4) AS prefix, tconst, numVotes
    FROM search_titles
),
flags AS (
    SELECT *, false AS smart_only FROM base
    UNION ALL
    SELECT *, true AS smart_only FROM base WHERE numVotes > 0
),
l4 AS (
    SELECT prefix, smart_only, tconst, numVotes FROM flags
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
l3g AS (
    SELECT left(prefix, 3) AS prefix, smart_only, tconst, any_value(numVotes) AS numVotes
    FROM l4 GROUP BY left(prefix, 3), smart_only, tconst
),
l3 AS (
    SELECT * FROM l3g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
l2g AS (
    SELECT left(prefix, 2) AS prefix, smart_only, tconst, any_value(numVotes) AS numVotes
    FROM l3 GROUP BY left(prefix, 2), smart_only, tconst
),
l2 AS (
    SELECT * FROM l2g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
l1g AS (
    SELECT left(prefix, 1) AS prefix, smart_only, tconst, any_value(numVotes) AS numVotes
    FROM l2 GROUP BY left(prefix, 1), smart_only, tconst
),
l1 AS (
    SELECT * FROM l1g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
tops AS (
    SELECT * FROM l4 UNION ALL SELECT * FROM l3 UNION ALL SELECT * FROM l2
    UNION ALL SELECT * FROM l1
),
ranked AS (
    SELECT prefix, smart_only,
           row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst)
               AS rank,
           tconst, numVotes
    FROM (SELECT DISTINCT prefix, smart_only, tconst, numVotes FROM tops)
)
SELECT r.prefix, r.smart_only, r.rank, r.tconst, t.primaryTitle, t.titleType, t.startYear,
       t.genres, t.averageRating, r.numVotes
FROM ranked r
JOIN titles t USING (tconst)
ORDER BY r.prefix, r.smart_only, r.rank;
