-- @description The other database's rows
-- @roles viewer
SELECT secret FROM private_t
