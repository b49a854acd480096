SELECT id, m, [m, 'sad'::mood] AS ml FROM moods ORDER BY id
