-- @description Its result changes without a data change, so it is never cached
SELECT random() AS r
