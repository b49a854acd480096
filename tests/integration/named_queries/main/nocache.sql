-- @description Never cached (@cache_ttl 0)
-- @cache_ttl 0
SELECT count(*) AS n FROM t
