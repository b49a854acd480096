SELECT [1.5, 'nan'::DOUBLE, '-inf'::DOUBLE] AS dl,
       MAP {DATE '2024-01-01': 1.50::DECIMAL(4,2)} AS dm,
       {'k': [MAP {'a': [1]}]} AS deep,
       [[1, 2], [], NULL, [3]] AS ll,
       ['q"' || chr(10) || 'x', 'é\'] AS sl,
       MAP {1.5::DOUBLE: 'x', 'nan'::DOUBLE: 'n'} AS fm,
       ['9007199254740993'::BIGINT, 1::BIGINT] AS bl,
       {'u': '550e8400-e29b-41d4-a716-446655440000'::UUID, 'h': 1::HUGEINT, 'b': '\xFF'::BLOB} AS misc
