-- @description Compare up to 4 people: career statistics side by side with their decade breakdown
-- @roles public
-- @cache_ttl 3600
-- @max_rows 4
-- @timeout_ms 2000
-- @param ids VARCHAR[] required max_items=4 max_length=12
-- The ids are a semi-join (IN a subquery), not `IN ($ids[1], ..., $ids[4])`: a parameter's list
-- elements are not constants to the planner, so that form scanned all of person_stats (0.7-1.8 s
-- at scale 1), while the join hands the scan its few keys at run time (DuckDB's dynamic join
-- filter) and the zone maps of the nconst-sorted tables skip all but a few row groups.
WITH s AS (
    SELECT * FROM person_stats
    WHERE nconst IN (SELECT unnest($ids))
),
d AS (
    SELECT nconst,
           list({'era': era, 'credits': credits, 'avg_rating': avg_rating} ORDER BY era)
               AS decades
    FROM person_decades
    WHERE nconst IN (SELECT unnest($ids))
    GROUP BY nconst
)
SELECT s.nconst, s.primaryName, s.credits, s.titles, s.first_year, s.last_year, s.era,
       s.main_category, s.avg_rating, s.total_votes, COALESCE(d.decades, []) AS decades
FROM s
LEFT JOIN d USING (nconst)
ORDER BY list_position($ids, s.nconst)
