-- @description Type-ahead search of people by name prefix (first or last name), most credited first
-- @roles public
-- @cache_ttl 3600
-- @max_rows 100
-- @timeout_ms 2000
-- @param q VARCHAR required max_length=100
-- @param limit INTEGER default=20 min=1 max=100
-- @param era VARCHAR default=NULL one_of=1880s|1890s|1900s|1910s|1920s|1930s|1940s|1950s|1960s|1970s|1980s|1990s|2000s|2010s|2020s
-- @param smart BOOLEAN default=false
-- q is normalised like name_norm (pipelines/imdb/08_search_people.sql). Exactly one branch
-- runs (the conditions on $q/$era fold to constants once bound): prefixes of 1-4 characters
-- read the precomputed people_prefix_top (per era for 1-2 characters); longer prefixes, and an
-- era with 3-4 characters, read one range of the sorted search table. smart=true keeps people
-- with three or more credits.
WITH top AS (
    SELECT nconst, primaryName, credits, era, first_year, last_year, main_category, birthYear
    FROM people_prefix_top
    WHERE prefix = regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')
      AND smart_only = $smart
      AND era_filter = COALESCE($era, '')
      AND length(regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')) BETWEEN 1 AND 4
      AND ($era IS NULL OR length(regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')) <= 2)
      AND rank <= $limit
),
ranged AS (
    SELECT * FROM search_people_smart
    WHERE $smart
      AND name_norm >= regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g') AND name_norm < regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g') || '~'
    UNION ALL
    SELECT * FROM search_people
    WHERE NOT $smart
      AND name_norm >= regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g') AND name_norm < regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g') || '~'
),
-- The best rows first (a top-N, not a sort of the whole range), then one row per person: a
-- person matches through at most a few word suffixes, so 4 x limit rows hold limit people.
scan AS (
    SELECT nconst, primaryName, credits, era, first_year, last_year, main_category, birthYear
    FROM (
        SELECT * FROM ranged
        WHERE (length(regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')) > 4 OR ($era IS NOT NULL AND length(regexp_replace(lower(strip_accents($q)), '[^a-z0-9]', '', 'g')) > 2))
          AND ($era IS NULL OR era = $era)
        ORDER BY credits DESC, nconst, is_full DESC
        LIMIT $limit * 4
    )
    QUALIFY row_number() OVER (PARTITION BY nconst ORDER BY is_full DESC) = 1
)
SELECT * FROM (SELECT * FROM top UNION ALL SELECT * FROM scan)
ORDER BY credits DESC, nconst
LIMIT $limit
