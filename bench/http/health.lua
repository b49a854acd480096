-- GET /health: the HTTP floor.
local c = dofile("common.lua")
wrk.method = "GET"
wrk.path = "/health"
setup = c.setup
function response(status, headers, body) c.record(status, headers, body, false) end
done = c.done
