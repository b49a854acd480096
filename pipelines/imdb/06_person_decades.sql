-- Decade breakdown per person for the profile page, sorted by person. Ratings count each title
-- once, like person_stats (from its person_titles, dropped here once used). Averages are taken
-- over DECIMAL (exact, so independent of the order in which parallel threads add them up) and
-- rounded: a rebuild gives the same values.
CREATE OR REPLACE TABLE person_decades AS
SELECT nconst, era, sum(credits)::BIGINT AS credits, count(*) AS titles,
       round(avg(averageRating::DECIMAL(4, 1)), 2)::DOUBLE AS avg_rating
FROM person_titles
WHERE era IS NOT NULL
GROUP BY nconst, era
ORDER BY nconst, era;

DROP TABLE IF EXISTS person_titles;
