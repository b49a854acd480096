-- @description Type-ahead search of titles (no episodes) by word prefix, most voted first; filters era, genre, minimum votes; smart=true only rated titles
-- @roles public
-- @cache_ttl 3600
-- @max_rows 100
-- @timeout_ms 2000
-- @param q VARCHAR required max_length=100
-- @param limit INTEGER default=20 min=1 max=100
-- @param era VARCHAR default=NULL one_of=1880s|1890s|1900s|1910s|1920s|1930s|1940s|1950s|1960s|1970s|1980s|1990s|2000s|2010s|2020s
-- @param genre VARCHAR default=NULL one_of=Action|Adult|Adventure|Animation|Biography|Comedy|Crime|Documentary|Drama|Family|Fantasy|Film-Noir|Game-Show|History|Horror|Music|Musical|Mystery|News|Reality-TV|Romance|Sci-Fi|Short|Sport|Talk-Show|Thriller|War|Western
-- @param min_votes INTEGER default=0 min=0 max=100000000
-- @param smart BOOLEAN default=false
-- Like search_people: prefixes of 1-4 characters without an era or genre filter read
-- title_prefix_top, everything else one range of search_titles (sorted by name_norm). A minimum
-- of votes is served by the tops too: they hold the prefix's 100 most voted titles, so the
-- titles with at least min_votes among them are either `limit` or more, or all there are.
WITH top AS (
    SELECT tconst, primaryTitle, titleType, startYear, genres, averageRating, numVotes
    FROM title_prefix_top
    WHERE prefix = regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')
      AND smart_only = $smart
      AND length(regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')) BETWEEN 1 AND 4
      AND $era IS NULL AND $genre IS NULL
      AND numVotes >= $min_votes
      AND rank <= $limit
),
-- Top-N of the range first, then one row per title (see search_people).
scan AS (
    SELECT tconst, primaryTitle, titleType, startYear, genres, averageRating, numVotes
    FROM (
        SELECT * FROM search_titles
        WHERE name_norm >= regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g') AND name_norm < regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g') || '~'
          AND (length(regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')) > 4 OR $era IS NOT NULL OR $genre IS NOT NULL)
          AND regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g') <> ''
          AND ($era IS NULL OR era = $era)
          AND ($genre IS NULL OR list_contains(genre_list, $genre))
          AND numVotes >= $min_votes
          AND (NOT $smart OR numVotes > 0)
        ORDER BY numVotes DESC, tconst, is_full DESC
        LIMIT $limit * 4
    )
    QUALIFY row_number() OVER (PARTITION BY tconst ORDER BY is_full DESC) = 1
)
SELECT * FROM (SELECT * FROM top UNION ALL SELECT * FROM scan)
ORDER BY numVotes DESC, tconst
LIMIT $limit
