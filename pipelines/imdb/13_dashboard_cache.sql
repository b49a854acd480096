-- The overview page as one JSON value, so the dashboard's first paint is one row read.
-- Every list has an explicit order (ORDER BY inside the aggregate), so rebuilds are identical.
CREATE OR REPLACE TABLE dashboard_cache AS
SELECT 'overview' AS key, json_object(
    'totals', json_object(
        'people', (SELECT count(*) FROM name_basics),
        'titles', (SELECT count(*) FROM titles),
        'credits', (SELECT count(*) FROM title_principals),
        'rated_titles', (SELECT count(*) FROM title_ratings),
        'smart_people', (SELECT count(*) FROM person_stats WHERE smart)),
    'titles_by_era', (
        SELECT to_json(list(json_object('era', era, 'titles', n, 'avg_rating', r) ORDER BY era))
        FROM (SELECT era, count(*) AS n, round(avg(averageRating::DECIMAL(4, 1)), 2)::DOUBLE AS r
              FROM titles WHERE era IS NOT NULL GROUP BY era)),
    'titles_by_type', (
        SELECT to_json(list(json_object('type', titleType, 'titles', n)
                                ORDER BY n DESC, titleType))
        FROM (SELECT titleType, count(*) AS n FROM titles GROUP BY titleType)),
    'top_genres', (
        SELECT to_json(list(json_object('genre', g, 'titles', n) ORDER BY n DESC, g))
        FROM (SELECT g, count(*) AS n
              FROM (SELECT unnest(genre_list) AS g FROM titles) GROUP BY g)),
    'top_rated', (
        SELECT to_json(list(json_object('tconst', tconst, 'title', primaryTitle,
                                            'year', startYear, 'rating', averageRating,
                                            'votes', numVotes)
                                ORDER BY averageRating DESC, numVotes DESC, tconst))
        FROM (SELECT * FROM titles
              WHERE numVotes >= (SELECT quantile_disc(numVotes, 0.99) FROM titles
                                 WHERE numVotes > 0)
              ORDER BY averageRating DESC, numVotes DESC, tconst LIMIT 20)),
    'most_prolific', (
        SELECT to_json(list(json_object('nconst', nconst, 'name', primaryName,
                                            'credits', credits, 'category', main_category)
                                ORDER BY credits DESC, nconst))
        FROM (SELECT * FROM person_stats ORDER BY credits DESC, nconst LIMIT 20)),
    'credit_distribution', (
        SELECT to_json(list(json_object('credits', b, 'people', n) ORDER BY o))
        FROM (SELECT CASE WHEN credits = 0 THEN '0' WHEN credits = 1 THEN '1'
                          WHEN credits = 2 THEN '2' WHEN credits <= 5 THEN '3-5'
                          WHEN credits <= 20 THEN '6-20' WHEN credits <= 100 THEN '21-100'
                          ELSE '101+' END AS b,
                     min(credits) AS o, count(*) AS n
              FROM person_stats GROUP BY b))
) AS value;
