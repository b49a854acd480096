-- Title search by name prefix, like search_people (one row per word suffix of the title).
-- Episodes are left out: their titles ("Episode #1.5") are not what people type.
CREATE OR REPLACE TEMP MACRO norm(s) AS regexp_replace(lower(strip_accents(s)), '[^a-z0-9]', '', 'g');

CREATE OR REPLACE TABLE search_titles AS
WITH w AS (
    SELECT tconst, primaryTitle, titleType, startYear, era, genres, genre_list, numVotes,
           averageRating, string_split(primaryTitle, ' ') AS words
    FROM titles
    WHERE titleType <> 'tvEpisode' AND primaryTitle IS NOT NULL
),
k AS (
    SELECT *, unnest(range(len(words))) AS i FROM w
)
SELECT norm(array_to_string(words[i + 1:], '')) AS name_norm, i = 0 AS is_full, tconst,
       primaryTitle, titleType, startYear, era, genres, genre_list, numVotes, averageRating
FROM k
WHERE norm(words[i + 1]) <> ''
ORDER BY name_norm;
