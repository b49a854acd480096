SELECT id, s, length(s) AS n FROM (VALUES
  (1, 'plain'), (2, 'comma, here'), (3, 'quote " inside'), (4, 'line1' || chr(10) || 'line2'),
  (5, 'cr' || chr(13) || 'lf' || chr(10)), (6, 'tab' || chr(9) || 'sep'),
  (7, 'nul' || chr(0) || 'byte'), (8, 'back\slash'), (9, ' lead'), (10, 'trail '), (11, ''),
  (12, 'é日本🦆'), (13, 'ctl' || chr(1) || chr(31) || chr(127)),
  (14, 'ls' || chr(8232) || 'ps' || chr(8233)), (15, NULL), (16, '"'), (17, 'it''s'),
  (18, chr(8) || chr(12))
) t(id, s) ORDER BY id
