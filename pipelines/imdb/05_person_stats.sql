-- Career statistics per person (every person of name_basics, credited or not).
--
-- person_titles first: one row per person and title (a person may hold several credits on one
-- title), so ratings and votes count each title once. It is also what 06_person_decades.sql
-- reads, and that step drops it.
--
-- Memory: at scale 1 this reads 90M credits with 8 GB of RAM. Every aggregate state here is a
-- number (strings as aggregate states - any_value(title), arg_max over a struct with a VARCHAR -
-- cannot be spilled, and they ran out of 7 GB); names and titles are joined once per person at
-- the end. Ties are broken by explicit keys so that a rebuild gives identical values: the top
-- title is the most voted one, then the highest title number; the main category is the most
-- credited one, then the last by name.
CREATE OR REPLACE TABLE person_titles AS
SELECT nconst, tconst, count(*)::INTEGER AS credits, any_value(startYear) AS startYear,
       any_value(era) AS era, any_value(averageRating) AS averageRating,
       any_value(numVotes) AS numVotes
FROM person_filmography
GROUP BY nconst, tconst;

CREATE OR REPLACE TABLE person_stats AS
WITH c AS (
    SELECT nconst, sum(credits)::BIGINT AS credits, count(*) AS titles,
           min(startYear) AS first_year, max(startYear) AS last_year,
           round(avg(averageRating::DECIMAL(4, 1)), 2)::DOUBLE AS avg_rating,
           count(averageRating) AS rated_titles, sum(numVotes)::BIGINT AS total_votes,
           arg_max(tconst, numVotes::HUGEINT * 100000000000 + substr(tconst, 3)::BIGINT)
               AS top_tconst
    FROM person_titles
    GROUP BY nconst
),
categories AS (
    SELECT category, row_number() OVER (ORDER BY category) AS category_rank
    FROM (SELECT DISTINCT category FROM person_filmography)
),
cat AS (
    SELECT nconst, category, count(*) AS n
    FROM person_filmography
    GROUP BY nconst, category
),
main AS (
    SELECT nconst, arg_max(category, n * 1024 + category_rank) AS main_category
    FROM cat JOIN categories USING (category)
    GROUP BY nconst
)
SELECT n.nconst, n.primaryName, n.birthYear, n.deathYear, n.primaryProfession,
       COALESCE(c.credits, 0) AS credits, COALESCE(c.titles, 0) AS titles,
       c.first_year, c.last_year,
       CASE WHEN c.first_year IS NOT NULL
            THEN ((c.first_year + c.last_year) // 2 // 10 * 10)::VARCHAR || 's' END AS era,
       m.main_category, c.avg_rating, COALESCE(c.rated_titles, 0) AS rated_titles,
       COALESCE(c.total_votes, 0) AS total_votes, c.top_tconst, t.primaryTitle AS top_title,
       COALESCE(c.credits, 0) >= 3 AS smart
FROM name_basics n
LEFT JOIN c USING (nconst)
LEFT JOIN main m USING (nconst)
LEFT JOIN titles t ON t.tconst = c.top_tconst
ORDER BY n.nconst;
