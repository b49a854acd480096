-- @description Person profile header: career statistics of one person
-- @roles public
-- @cache_ttl 3600
-- @max_rows 1
-- @timeout_ms 2000
-- @param id VARCHAR required max_length=12 regex=^nm[0-9]+$
SELECT nconst, primaryName, birthYear, deathYear, primaryProfession, credits, titles,
       first_year, last_year, era, main_category, avg_rating, rated_titles, total_votes,
       top_tconst, top_title
FROM person_stats
WHERE nconst = $id
