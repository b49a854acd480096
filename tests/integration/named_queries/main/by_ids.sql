-- @description Rows by a list of ids (and optionally names)
-- @param ids INTEGER[] required max_items=5 min=1 max=100
-- @param names VARCHAR[] default=NULL max_items=3 max_length=10
SELECT id, name FROM t
WHERE list_contains($ids, id) AND ($names IS NULL OR list_contains($names, name))
ORDER BY id
