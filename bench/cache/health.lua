-- GET /health: the HTTP floor the hit rate is compared with.
local c = dofile("../http/common.lua")
setup = c.setup
wrk.method = "GET"
wrk.path = "/health"
function response(status, headers, body) c.record(status, headers, body, false) end
done = c.done
