-- People search by name prefix. name_norm is the name lowercased, accents stripped
-- (strip_accents) and every non-alphanumeric character removed; there is one row per word
-- suffix of the name ("jerry k. richardson" -> jerrykrichardson, krichardson, richardson), so a
-- prefix matches a first or a last name. Sorted by name_norm: a prefix is one range
-- (name_norm >= q AND name_norm < q || '~'; '~' sorts after [a-z0-9]), read through zone maps.
-- search_people_smart is the same for people with three or more credits.
CREATE OR REPLACE TEMP MACRO norm(s) AS regexp_replace(lower(strip_accents(s)), '[^a-z0-9]', '', 'g');

CREATE OR REPLACE TABLE search_people AS
WITH w AS (
    SELECT nconst, primaryName, credits, era, first_year, last_year, main_category, birthYear,
           smart, string_split(primaryName, ' ') AS words
    FROM person_stats
    WHERE primaryName IS NOT NULL
),
k AS (
    SELECT *, unnest(range(len(words))) AS i FROM w
)
SELECT norm(array_to_string(words[i + 1:], '')) AS name_norm, i = 0 AS is_full, nconst,
       primaryName, credits, era, first_year, last_year, main_category, birthYear, smart
FROM k
WHERE norm(words[i + 1]) <> ''
ORDER BY name_norm;

CREATE OR REPLACE TABLE search_people_smart AS
SELECT * FROM search_people WHERE smart ORDER BY name_norm;
