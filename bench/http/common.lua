-- Shared by the duckgate wrk scripts: per-thread sample collection and one machine-readable
-- summary line (parsed by bench/run.sh):
--   DGBENCH rps=<req/s> p50_ms=<> p99_ms=<> exec_p50_ms=<>|NA exec_p99_ms=<>|NA
--           queue_p50_ms=<>|NA srv_p50_ms=<>|NA non2xx=<> errors=<> statuses=<code:n,...>|-
-- exec = server-side execute+encode time (Server-Timing), else the JSON elapsed_ms;
-- queue = Server-Timing queue wait; srv = exec + queue (all the server-measured time).
local M = {}

local threads = {}
local tcount = 0

-- Percent-encodes s for a URL query value.
function M.urlencode(s)
   return (string.gsub(s, "[^%w%-%._~]", function(ch)
      return string.format("%%%02X", string.byte(ch))
   end))
end

function M.setup(thread)
   tcount = tcount + 1
   thread:set("tid", tcount)
   table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
samples = {}   -- exec ms
qsamples = {}  -- queue ms
tsamples = {}  -- exec + queue ms
nsamples = 0
non2xx = 0
statuses = {}  -- non-2xx status -> count
MAX_SAMPLES = 200000

-- Server-side times of one response in ms: exec (execute + encode) and queue from
-- Server-Timing, else exec = the JSON elapsed_ms and queue = nil; nil when neither is there.
function M.server_ms(headers, body)
   local st = headers["Server-Timing"] or headers["server-timing"]
   if st then
      local exec, queue, found = 0, nil, false
      for name, dur in string.gmatch(st, "([%w_-]+)%s*;%s*dur=([%d%.eE+-]+)") do
         found = true
         if name == "queue" then queue = tonumber(dur) else exec = exec + tonumber(dur) end
      end
      if found then return exec, queue end
   end
   if body then
      local e = string.match(body, '"elapsed_ms"%s*:%s*([%d%.eE+-]+)')
      if e then return tonumber(e), nil end
   end
   return nil, nil
end

function M.record(status, headers, body, want_server_time)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
      return
   end
   if want_server_time and nsamples < MAX_SAMPLES then
      local exec, queue = M.server_ms(headers, body)
      if exec then
         nsamples = nsamples + 1
         samples[nsamples] = exec
         qsamples[nsamples] = queue or 0
         tsamples[nsamples] = exec + (queue or 0)
      end
   end
end

local function pct(sorted, p)
   if #sorted == 0 then return nil end
   local i = math.max(1, math.min(#sorted, math.ceil(#sorted * p / 100)))
   return sorted[i]
end

local function gather(name)
   local all = {}
   for _, t in ipairs(threads) do
      local s = t:get(name)
      if s then
         for _, v in ipairs(s) do all[#all + 1] = v end
      end
   end
   table.sort(all)
   return all
end

local function fmt(v)
   return v and string.format("%.3f", v) or "NA"
end

function M.done(summary, latency, requests)
   local bad, by = 0, {}
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
      for k, v in pairs(t:get("statuses") or {}) do by[k] = (by[k] or 0) + v end
   end
   local parts = {}
   for k, v in pairs(by) do parts[#parts + 1] = k .. ":" .. v end
   table.sort(parts)
   local ex, qu, tot = gather("samples"), gather("qsamples"), gather("tsamples")
   local secs = summary.duration / 1e6
   local errs = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout
   io.write(string.format(
      "DGBENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f exec_p50_ms=%s exec_p99_ms=%s queue_p50_ms=%s "
         .. "srv_p50_ms=%s non2xx=%d errors=%d statuses=%s\n",
      summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      fmt(pct(ex, 50)), fmt(pct(ex, 99)), fmt(pct(qu, 50)), fmt(pct(tot, 50)),
      math.max(bad, summary.errors.status), errs, #parts > 0 and table.concat(parts, ",") or "-"))
end

return M
