-- Point lookup by id on the bench table with a random id per request, cache off (run.sh starts
-- that server with --cache off), either as the named query bench/point (DG_LOOKUP=named:
-- GET /api/q/bench/point?id=N, a cached prepared statement on a long-lived connection) or as
-- the same SQL through /api/query (DG_LOOKUP=sql: GET /api/query/bench?sql=...&params=[N]).
local c = dofile("../http/common.lua")
setup = c.setup

local urlencode = c.urlencode

local mode = os.getenv("DG_LOOKUP") or "named"
local rows = tonumber(os.getenv("DG_BENCH_ROWS") or "100000")
local sql_prefix = "/api/query/bench?sql="
   .. urlencode("SELECT id, name, score, cat FROM t WHERE id = ?") .. "&params="

function init(args)
   math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
   local id = math.random(0, rows - 1)
   if mode == "sql" then
      return wrk.format("GET", sql_prefix .. urlencode("[" .. id .. "]"))
   end
   return wrk.format("GET", "/api/q/bench/point?id=" .. id)
end

function response(status, headers, body) c.record(status, headers, body, true) end
done = c.done
