-- Leaderboards: the 50 people with most credits per era x category.
CREATE OR REPLACE TABLE prolific_summary AS
WITH c AS (
    SELECT era, category, nconst, min(primaryName) AS primaryName, count(*) AS credits,
           round(avg(averageRating::DECIMAL(4, 1)), 2)::DOUBLE AS avg_rating
    FROM person_filmography
    WHERE era IS NOT NULL
    GROUP BY era, category, nconst
)
SELECT era, category,
       row_number() OVER (PARTITION BY era, category ORDER BY credits DESC, nconst) AS rank,
       nconst, primaryName, credits, avg_rating
FROM c
QUALIFY rank <= 50
ORDER BY era, category, rank;
