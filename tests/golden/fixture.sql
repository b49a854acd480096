-- The golden fixture database, created with `duckgate exec` by run_golden.py.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE moods (id INTEGER, m mood);
INSERT INTO moods VALUES (1, 'ok'), (2, NULL), (3, 'happy'), (4, 'sad');

-- One row per interesting value of every common type; read back by the round-trip checks.
CREATE TABLE mixed (id INTEGER, b BOOLEAN, i8 TINYINT, i64 BIGINT, u64 UBIGINT, h HUGEINT,
    f FLOAT, d DOUBLE, dec DECIMAL(18,3), dec38 DECIMAL(38,10), s VARCHAR, bl BLOB, u UUID,
    dt DATE, t TIME, ts TIMESTAMP, tz TIMESTAMPTZ, iv INTERVAL, e mood, l INTEGER[],
    st STRUCT(a INTEGER, b VARCHAR), m MAP(VARCHAR, INTEGER), arr DOUBLE[2]);
INSERT INTO mixed VALUES
 (1, true, 1, 9007199254740993, 18446744073709551615, '-170141183460469231731687303715884105728',
  0.1, 0.1, 1234.5, '-1.0000000001', 'a,b "c"' || chr(10) || 'd', '\x00\xFF'::BLOB,
  '550e8400-e29b-41d4-a716-446655440000', '2024-02-29', '12:34:56.789',
  '2023-11-14 22:13:20.123456', '2024-01-01 12:00:00+02',
  INTERVAL '1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds', 'happy', [1, NULL, 3],
  {'a': 1, 'b': 'x,"y"'}, MAP {'k': 1, 'z': NULL}, [1.5, -0.25]),
 (2, false, -128, -1, 0, 0, 'nan', 'inf', -0.001, 0, '', ''::BLOB,
  '00000000-0000-0000-0000-000000000000', '1969-12-31', '00:00:00',
  '1969-12-31 23:59:59.999999', '1970-01-01 00:00:00+00', INTERVAL '-1 day', 'sad', [],
  {'a': NULL, 'b': NULL}, MAP {}, [0, 1e300]),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, true, 127, 9223372036854775807, 9007199254740992, 1, '-inf', '-inf', 999999999999999.999,
  '9999999999999999999999999999.9999999999', ' é日本🦆 ', '\x41\x42'::BLOB,
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '0001-01-01', '24:00:00', 'infinity', '-infinity',
  INTERVAL '0 seconds', 'ok', [7], {'a': -1, 'b': ''}, MAP {'': 0}, [NULL, 2]),
 (5, false, 0, 42, 42, 42, 1e-45, 5e-324, 0.5, 0.5, 'tab' || chr(9) || 'x\y', NULL, NULL,
  '2000-01-01', '23:59:59.999999', '2000-01-01 00:00:00', '2000-01-01 00:00:00.5+00',
  INTERVAL '36 hours', NULL, [NULL], NULL, MAP {'a': 2}, NULL);
CHECKPOINT;
