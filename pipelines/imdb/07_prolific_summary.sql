-- Leaderboards: the 50 people with most credits per era x category (ties: the lower person
-- number first). Top-N aggregates instead of a window over every (era, category, person): a
-- window would sort tens of millions of rows to keep a few thousand. Names are joined for the
-- winners only.
CREATE OR REPLACE TABLE prolific_summary AS
WITH c AS (
    SELECT era, category, nconst, count(*) AS credits,
           round(avg(averageRating::DECIMAL(4, 1)), 2)::DOUBLE AS avg_rating
    FROM person_filmography
    WHERE era IS NOT NULL
    GROUP BY era, category, nconst
),
top AS (
    SELECT era, category,
           arg_max({'nconst': nconst, 'credits': credits, 'avg_rating': avg_rating},
                   credits::HUGEINT * 100000000000 - substr(nconst, 3)::BIGINT, 50) AS best
    FROM c
    GROUP BY era, category
),
ranked AS (
    SELECT era, category, unnest(best) AS p, unnest(range(1, len(best) + 1)) AS rank
    FROM top
)
SELECT r.era, r.category, r.rank, r.p.nconst AS nconst, n.primaryName, r.p.credits AS credits,
       r.p.avg_rating AS avg_rating
FROM ranked r
LEFT JOIN name_basics n ON n.nconst = r.p.nconst
ORDER BY r.era, r.category, r.rank;
