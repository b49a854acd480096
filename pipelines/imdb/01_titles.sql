-- Titles with their rating, genre list and era: the base of every title-side table.
-- Unrated titles get numVotes 0 (so "minimum votes" filters need no NULL handling).
CREATE OR REPLACE TABLE titles AS
SELECT b.tconst, b.titleType, b.primaryTitle, b.originalTitle, b.isAdult, b.startYear, b.endYear,
       b.runtimeMinutes, b.genres,
       COALESCE(list_sort(string_split(b.genres, ',')), []::VARCHAR[]) AS genre_list,
       CASE WHEN b.startYear IS NOT NULL THEN (b.startYear // 10 * 10)::VARCHAR || 's' END AS era,
       r.averageRating, COALESCE(r.numVotes, 0) AS numVotes
FROM title_basics b
LEFT JOIN title_ratings r USING (tconst)
ORDER BY b.tconst;
