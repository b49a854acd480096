-- Point lookup on the 1M-row table: GET /api/query/bench?sql=SELECT * FROM t WHERE id = ?&params=[id]
-- with a random id per request.
local c = dofile("common.lua")
setup = c.setup

local urlencode = c.urlencode

local prefix = "/api/query/bench?sql=" .. urlencode("SELECT * FROM t WHERE id = ?") .. "&params="
local rows = tonumber(os.getenv("DG_BENCH_ROWS") or "1000000")

function init(args)
   math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
   local id = math.random(0, rows - 1)
   return wrk.format("GET", prefix .. urlencode("[" .. id .. "]"))
end

function response(status, headers, body) c.record(status, headers, body, true) end
done = c.done
