-- One parameter of every scalar type, echoed with the type DuckDB bound it as.
-- @description Echo of every parameter type
-- @param b BOOLEAN default=true
-- @param i8 TINYINT default=1
-- @param i16 SMALLINT default=2
-- @param i32 INTEGER default=3
-- @param i64 BIGINT default=4
-- @param f DOUBLE default=0.5
-- @param s VARCHAR default=x
-- @param d DATE default=2024-02-29
-- @param ts TIMESTAMP default=2024-02-29T12:34:56.789
SELECT $b AS b, typeof($b) AS tb,
       $i8 AS i8, typeof($i8) AS ti8,
       $i16 AS i16, typeof($i16) AS ti16,
       $i32 AS i32, typeof($i32) AS ti32,
       $i64 AS i64, typeof($i64) AS ti64,
       $f AS f, typeof($f) AS tf,
       $s AS s, typeof($s) AS ts_,
       $d AS d, typeof($d) AS td,
       $ts AS ts, typeof($ts) AS tts
