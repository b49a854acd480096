-- @description Leaderboard: the most credited people of an era in a category
-- @roles public
-- @cache_ttl 3600
-- @max_rows 50
-- @timeout_ms 2000
-- @param era VARCHAR required one_of=1880s|1890s|1900s|1910s|1920s|1930s|1940s|1950s|1960s|1970s|1980s|1990s|2000s|2010s|2020s
-- @param category VARCHAR default=actor one_of=actor|actress|self|director|writer|producer|composer|cinematographer|editor|production_designer|casting_director|archive_footage|archive_sound
-- @param limit INTEGER default=20 min=1 max=50
SELECT rank, nconst, primaryName, credits, avg_rating
FROM prolific_summary
WHERE era = $era AND category = $category
ORDER BY rank
LIMIT $limit
