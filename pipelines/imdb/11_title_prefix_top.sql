-- Type-ahead for short title prefixes, like people_prefix_top: for every prefix of one to four
-- characters, the 100 most voted distinct titles, for all titles and for rated ones only
-- (smart). Filters (era, genre, minimum votes) and longer prefixes use the range scan of
-- search_titles.
CREATE OR REPLACE TABLE title_prefix_top AS
WITH base AS (
    SELECT left(name_norm, 4) AS prefix, tconst, any_value(numVotes) AS numVotes,
           any_value({'primaryTitle': primaryTitle, 'titleType': titleType,
                      'startYear': startYear, 'genres': genres,
                      'averageRating': averageRating}) AS info
    FROM search_titles
    GROUP BY left(name_norm, 4), tconst
),
flags AS (
    SELECT *, false AS smart_only FROM base
    UNION ALL
    SELECT *, true AS smart_only FROM base WHERE numVotes > 0
),
l4 AS (
    SELECT prefix, smart_only, tconst, numVotes, info FROM flags
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
l3g AS (
    SELECT left(prefix, 3) AS prefix, smart_only, tconst, any_value(numVotes) AS numVotes,
           any_value(info) AS info
    FROM l4 GROUP BY left(prefix, 3), smart_only, tconst
),
l3 AS (
    SELECT * FROM l3g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
l2g AS (
    SELECT left(prefix, 2) AS prefix, smart_only, tconst, any_value(numVotes) AS numVotes,
           any_value(info) AS info
    FROM l3 GROUP BY left(prefix, 2), smart_only, tconst
),
l2 AS (
    SELECT * FROM l2g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
l1g AS (
    SELECT left(prefix, 1) AS prefix, smart_only, tconst, any_value(numVotes) AS numVotes,
           any_value(info) AS info
    FROM l2 GROUP BY left(prefix, 1), smart_only, tconst
),
l1 AS (
    SELECT * FROM l1g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) <= 100
),
tops AS (
    SELECT * FROM l4 UNION ALL SELECT * FROM l3 UNION ALL SELECT * FROM l2
    UNION ALL SELECT * FROM l1
)
SELECT prefix, smart_only,
       row_number() OVER (PARTITION BY prefix, smart_only ORDER BY numVotes DESC, tconst) AS rank,
       tconst, info.primaryTitle AS primaryTitle, info.titleType AS titleType,
       info.startYear AS startYear, info.genres AS genres,
       info.averageRating AS averageRating, numVotes
FROM (SELECT DISTINCT ON (prefix, smart_only, tconst) * FROM tops)
ORDER BY prefix, smart_only, rank;
