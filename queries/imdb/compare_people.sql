-- @description Compare up to 4 people: career statistics side by side with their decade breakdown
-- @roles public
-- @cache_ttl 3600
-- @max_rows 4
-- @timeout_ms 2000
-- @param ids VARCHAR[] required max_items=4 max_length=12
-- The ids become a constant IN list once bound (missing items are NULL and match nothing), which
-- DuckDB checks against each row group's min/max: four point lookups, not a scan.
WITH s AS (
    SELECT * FROM person_stats
    WHERE nconst IN ($ids[1], $ids[2], $ids[3], $ids[4])
),
d AS (
    SELECT nconst,
           list({'era': era, 'credits': credits, 'avg_rating': avg_rating} ORDER BY era)
               AS decades
    FROM person_decades
    WHERE nconst IN ($ids[1], $ids[2], $ids[3], $ids[4])
    GROUP BY nconst
)
SELECT s.nconst, s.primaryName, s.credits, s.titles, s.first_year, s.last_year, s.era,
       s.main_category, s.avg_rating, s.total_votes, COALESCE(d.decades, []) AS decades
FROM s
LEFT JOIN d USING (nconst)
ORDER BY list_position($ids, s.nconst)
