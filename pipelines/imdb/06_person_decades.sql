-- Decade breakdown per person for the profile page, sorted by person. Ratings count each title
-- once, like person_stats. Averages are taken over DECIMAL (exact, so independent of the order
-- in which parallel threads add them up) and rounded: a rebuild gives the same values.
CREATE OR REPLACE TABLE person_decades AS
WITH pt AS (
    SELECT nconst, era, tconst, count(*) AS credits, any_value(averageRating) AS averageRating
    FROM person_filmography
    WHERE era IS NOT NULL
    GROUP BY nconst, era, tconst
)
SELECT nconst, era, sum(credits)::BIGINT AS credits, count(*) AS titles,
       round(avg(averageRating::DECIMAL(4, 1)), 2)::DOUBLE AS avg_rating
FROM pt
GROUP BY nconst, era
ORDER BY nconst, era;
