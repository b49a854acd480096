-- A cache hit: the same GET /api/query/bench?sql=... every time (warmed by run.sh first).
-- Counts responses whose Cache-Status is not a hit as non-2xx-like failures in "statuses".
local c = dofile("../http/common.lua")
setup = c.setup
wrk.method = "GET"
wrk.path = os.getenv("DG_HIT_PATH")
function response(status, headers, body)
   local cs = headers["Cache-Status"] or headers["cache-status"] or ""
   if status == 200 and not string.find(cs, "duckgate; hit", 1, true) then
      status = 599 -- a miss in a hit benchmark: reported as status 599
   end
   c.record(status, headers, body, false)
end
done = c.done
