SELECT 1 AS "a,b", 2 AS "q""t", 3 AS " lead", 4 AS "é", 5 AS "tab	x"
