-- Type-ahead for short prefixes. A one- to four-character prefix matches a large share of all
-- names ("j": a tenth of them), and ranking that whole range per keystroke costs far more than
-- the 30 ms a type-ahead may take. So the answer is precomputed: for every prefix of one to four
-- characters of name_norm, the 100 most credited distinct people (the largest `limit` a query
-- may ask), for all people and for the smart subset; for one- and two-character prefixes also
-- per era. Longer prefixes (few rows) and era filters on 3-4 characters use the range scan of
-- search_people.
--
-- Level n is computed from the tops of level n+1: the best 100 under a prefix are among the
-- best 100 under each of its one-character extensions (a name shorter than the level is its
-- own group, so it is kept too).
--
-- Only keys and numbers go through the groupings and windows (a struct of names as an aggregate
-- state cannot spill, and ran out of memory at scale 1); the displayed columns are joined from
-- person_stats for the winners at the end.
CREATE OR REPLACE TABLE people_prefix_top AS
WITH base AS (
    SELECT DISTINCT left(name_norm, 4) AS prefix, nconst, credits, era, smart
    FROM search_people
),
flags AS (
    SELECT *, false AS smart_only FROM base
    UNION ALL
    SELECT *, true AS smart_only FROM base WHERE smart
),
l4 AS (
    SELECT prefix, smart_only, nconst, credits, era FROM flags
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY credits DESC, nconst) <= 100
),
l3g AS (
    SELECT left(prefix, 3) AS prefix, smart_only, nconst, any_value(credits) AS credits,
           any_value(era) AS era
    FROM l4 GROUP BY left(prefix, 3), smart_only, nconst
),
l3 AS (
    SELECT * FROM l3g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY credits DESC, nconst) <= 100
),
l2g AS (
    SELECT left(prefix, 2) AS prefix, smart_only, nconst, any_value(credits) AS credits,
           any_value(era) AS era
    FROM l3 GROUP BY left(prefix, 2), smart_only, nconst
),
l2 AS (
    SELECT * FROM l2g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY credits DESC, nconst) <= 100
),
l1g AS (
    SELECT left(prefix, 1) AS prefix, smart_only, nconst, any_value(credits) AS credits,
           any_value(era) AS era
    FROM l2 GROUP BY left(prefix, 1), smart_only, nconst
),
l1 AS (
    SELECT * FROM l1g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only ORDER BY credits DESC, nconst) <= 100
),
-- Per era, levels 2 and 1 (from all people of the era, not from the tops above).
e2g AS (
    SELECT left(prefix, 2) AS prefix, smart_only, era, nconst, any_value(credits) AS credits
    FROM flags WHERE era IS NOT NULL
    GROUP BY left(prefix, 2), smart_only, era, nconst
),
e2 AS (
    SELECT * FROM e2g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only, era
                               ORDER BY credits DESC, nconst) <= 100
),
e1g AS (
    SELECT left(prefix, 1) AS prefix, smart_only, era, nconst, any_value(credits) AS credits
    FROM e2 GROUP BY left(prefix, 1), smart_only, era, nconst
),
e1 AS (
    SELECT * FROM e1g
    QUALIFY row_number() OVER (PARTITION BY prefix, smart_only, era
                               ORDER BY credits DESC, nconst) <= 100
),
tops AS (
    SELECT prefix, smart_only, '' AS era_filter, nconst, credits FROM l4
    UNION ALL SELECT prefix, smart_only, '', nconst, credits FROM l3
    UNION ALL SELECT prefix, smart_only, '', nconst, credits FROM l2
    UNION ALL SELECT prefix, smart_only, '', nconst, credits FROM l1
    UNION ALL SELECT prefix, smart_only, era, nconst, credits FROM e2
    UNION ALL SELECT prefix, smart_only, era, nconst, credits FROM e1
),
ranked AS (
    SELECT prefix, smart_only, era_filter,
           row_number() OVER (PARTITION BY prefix, smart_only, era_filter
                              ORDER BY credits DESC, nconst) AS rank,
           nconst, credits
    FROM (SELECT DISTINCT prefix, smart_only, era_filter, nconst, credits FROM tops)
)
-- A prefix shorter than its level (a short name) can appear at two levels: kept once (DISTINCT).
SELECT r.prefix, r.smart_only, r.era_filter, r.rank, r.nconst, p.primaryName, r.credits, p.era,
       p.first_year, p.last_year, p.main_category, p.birthYear
FROM ranked r
JOIN person_stats p USING (nconst)
ORDER BY r.prefix, r.smart_only, r.era_filter, r.rank;
