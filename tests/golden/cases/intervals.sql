SELECT * FROM (VALUES
  (1, INTERVAL '1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds'),
  (2, INTERVAL '0 seconds'),
  (3, -INTERVAL '1 year 2 months' + INTERVAL '3 days' - INTERVAL '4 hours 5 minutes 6.5 seconds'),
  (4, INTERVAL '36 hours'),
  (5, INTERVAL '14 months'),
  (6, INTERVAL '1 microsecond'),
  (7, INTERVAL '-1 day'),
  (8, NULL),
  (9, INTERVAL '90 minutes'),
  (10, to_days(400))
) t(id, iv) ORDER BY id
