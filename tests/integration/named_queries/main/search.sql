-- The example of docs/named-queries.md, over the fixture table t.
-- @description Search rows by name prefix, optionally in one group
-- @roles public
-- @cache_ttl 60
-- @cache public
-- @param q VARCHAR required max_length=20 regex=^[^%]*$ -- name prefix
-- @param limit INTEGER default=5 min=1 max=50
-- @param grp VARCHAR default=NULL one_of=a|b|c
-- @param smart BOOLEAN default=false -- only ids divisible by 3
-- @param since DATE default=NULL min=2000-01-01
SELECT id, name, grp, d
FROM t
WHERE name >= $q AND name < $q || '~'
  AND ($grp IS NULL OR grp = $grp)
  AND (NOT $smart OR id % 3 = 0)
  AND ($since IS NULL OR d >= $since)
ORDER BY name
LIMIT $limit
