SELECT * FROM (VALUES
  (1, [1, NULL, 3], ['a', 'b,c', NULL], {'a': 1, 'b': 'x'}, MAP {'k1': 1, 'k2': NULL},
   [1, 2, 3]::INTEGER[3], [{'x': [1, 2]}, {'x': []}], MAP {1: 'one', 2: 'two'}),
  (2, [], [], {'a': NULL, 'b': NULL}, MAP {}, [NULL, NULL, 7]::INTEGER[3], [], MAP {}),
  (3, NULL, [''], NULL, NULL, NULL, NULL, NULL)
) t(id, l, sl, st, m, arr, ls, mi) ORDER BY id
