-- @description Overview page: totals, titles by era and type, top genres, top rated, most prolific, credit distribution (one JSON value built by the pipeline)
-- @roles public
-- @cache_ttl 3600
-- @max_rows 1
-- @timeout_ms 2000
SELECT value FROM dashboard_cache WHERE key = 'overview'
