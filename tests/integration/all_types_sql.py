"""The all-types fixture table (database `types`, table `all_types`) and the exact JSON values
the server must return for it (DESIGN §5: lossless JSON)."""

STR1 = 'He said "hi"\n\tline2 \\ back / slash \u00e9\u00fc \u6f22\u5b57 \U0001F986 ctl:\x01\x1f end'

ALL_TYPES_SQL = r"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE all_types (
  id INTEGER, b BOOLEAN, ti TINYINT, si SMALLINT, i INTEGER, bi BIGINT, bi2 BIGINT, hi HUGEINT,
  uti UTINYINT, usi USMALLINT, ui UINTEGER, ubi UBIGINT, uhi UHUGEINT,
  f FLOAT, f2 FLOAT, dbl DOUBLE, dbl2 DOUBLE,
  dec1 DECIMAL(18,3), dec2 DECIMAL(38,10), s VARCHAR, bl BLOB,
  dt DATE, tm TIME, ts TIMESTAMP, tstz TIMESTAMPTZ, iv INTERVAL, u UUID, u2 UUID, e mood,
  li INTEGER[], lis VARCHAR[][], st STRUCT(a INTEGER, b VARCHAR, c DOUBLE[]),
  mp MAP(VARCHAR, INTEGER), arr INTEGER[3], nest STRUCT(l BIGINT[]));
INSERT INTO all_types VALUES (
  1, true, -128, -32768, -2147483648, 9007199254740991, 42, 1,
  255, 65535, 4294967295, 18446744073709551615, 340282366920938463463374607431768211455,
  1.5, 0.1, 0.1, 1e300,
  123456789012345.678, 1234567890123456789012345678.0123456789,
  'He said "hi"' || chr(10) || chr(9) || 'line2 \ back / slash éü 漢字 🦆 ctl:'
    || chr(1) || chr(31) || ' end',
  '\x00\xFF\x10abc'::BLOB,
  DATE '2024-02-29', TIME '13:45:30.123456', TIMESTAMP '2024-02-29 13:45:30.123456',
  TIMESTAMPTZ '2024-02-29 13:45:30.5+02:00',
  INTERVAL '1 year 2 months 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'happy',
  [1, 2, NULL], [['a', 'b'], [NULL]], {'a': 1, 'b': 'x', 'c': [1.5]},
  MAP {'k1': 1, 'k2': NULL}, [1, 2, 3], {'l': [9223372036854775807, 1]});
INSERT INTO all_types VALUES (
  2, false, 127, 32767, 2147483647, -9223372036854775808, 9223372036854775807,
  -170141183460469231731687303715884105728,
  0, 0, 0, 7, 0,
  'NaN', '-Infinity', 'Infinity', 5e-324,
  -0.001, -0.0000000001, '', ''::BLOB,
  DATE '1970-01-01', TIME '00:00:00', TIMESTAMP '1970-01-01 00:00:00',
  TIMESTAMPTZ '1970-01-01 00:00:00+00',
  INTERVAL '36 hours',
  '00000000-0000-0000-0000-000000000001', '7fffffff-ffff-ffff-ffff-ffffffffffff', 'sad',
  [], [['c'], []], {'a': NULL, 'b': NULL, 'c': NULL},
  MAP {}, [NULL, 5, 6], {'l': []});
INSERT INTO all_types (id) VALUES (3);
CHECKPOINT;
"""

# Expected JSON per column for rows 1..3. Comparison rules in test_types.py: exact JSON equality,
# except FLOAT (any decimal that rounds to the same float32), DECIMAL (string with the same
# decimal value), date/time (ISO 8601 syntax checked by regex, value compared), INTERVAL (ISO 8601
# duration with the same months/days/micros) and MAP (object or list of key/value pairs).
EXPECTED = {
    "id": [1, 2, 3],
    "b": [True, False, None],
    "ti": [-128, 127, None],
    "si": [-32768, 32767, None],
    "i": [-2147483648, 2147483647, None],
    "bi": [9007199254740991, "-9223372036854775808", None],
    "bi2": [42, "9223372036854775807", None],
    "hi": ["1", "-170141183460469231731687303715884105728", None],
    "uti": [255, 0, None],
    "usi": [65535, 0, None],
    "ui": [4294967295, 0, None],
    "ubi": ["18446744073709551615", 7, None],
    "uhi": ["340282366920938463463374607431768211455", "0", None],
    "f": [1.5, None, None],
    "f2": [0.1, None, None],
    "dbl": [0.1, None, None],
    "dbl2": [1e300, 5e-324, None],
    "dec1": ["123456789012345.678", "-0.001", None],
    "dec2": ["1234567890123456789012345678.0123456789", "-0.0000000001", None],
    "s": [STR1, "", None],
    "bl": ["AP8QYWJj", "", None],
    "dt": ["2024-02-29", "1970-01-01", None],
    "tm": ["13:45:30.123456", "00:00:00", None],
    "ts": ["2024-02-29T13:45:30.123456", "1970-01-01T00:00:00", None],
    "tstz": ["2024-02-29T11:45:30.5Z", "1970-01-01T00:00:00Z", None],
    # (months, days, micros)
    "iv": [(14, 3, (4 * 3600 + 5 * 60 + 6) * 1000000 + 789000), (0, 0, 36 * 3600 * 1000000),
           None],
    "u": ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000001", None],
    "u2": ["ffffffff-ffff-ffff-ffff-ffffffffffff", "7fffffff-ffff-ffff-ffff-ffffffffffff", None],
    "e": ["happy", "sad", None],
    "li": [[1, 2, None], [], None],
    "lis": [[["a", "b"], [None]], [["c"], []], None],
    "st": [{"a": 1, "b": "x", "c": [1.5]}, {"a": None, "b": None, "c": None}, None],
    "mp": [[("k1", 1), ("k2", None)], [], None],
    "arr": [[1, 2, 3], [None, 5, 6], None],
    "nest": [{"l": ["9223372036854775807", 1]}, {"l": []}, None],
}

# Column types as DuckDB spells them (alternatives allowed where DuckDB has two spellings).
EXPECTED_TYPES = {
    "id": ["INTEGER"], "b": ["BOOLEAN"], "ti": ["TINYINT"], "si": ["SMALLINT"],
    "i": ["INTEGER"], "bi": ["BIGINT"], "hi": ["HUGEINT"], "uti": ["UTINYINT"],
    "usi": ["USMALLINT"], "ui": ["UINTEGER"], "ubi": ["UBIGINT"], "uhi": ["UHUGEINT"],
    "f": ["FLOAT"], "dbl": ["DOUBLE"], "dec1": ["DECIMAL(18,3)"], "dec2": ["DECIMAL(38,10)"],
    "s": ["VARCHAR"], "bl": ["BLOB"], "dt": ["DATE"], "tm": ["TIME"], "ts": ["TIMESTAMP"],
    "tstz": ["TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"], "iv": ["INTERVAL"], "u": ["UUID"],
    "li": ["INTEGER[]"], "lis": ["VARCHAR[][]"], "arr": ["INTEGER[3]"],
    "mp": ["MAP(VARCHAR, INTEGER)"],
}
