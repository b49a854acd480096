-- @description Only admins may run this
-- @roles admin
SELECT count(*) AS n FROM t
