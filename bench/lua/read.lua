-- wrk script: GET /fhir/Patient/<id> with an id drawn at random from a file.
--
--   wrk -t2 -c32 -d20s --latency -s bench/lua/read.lua http://127.0.0.1:8080 -- ids.txt
--
-- ids.txt holds one resource id a line. No response() callback: wrk then skips
-- handing every body to Lua, which keeps the load generator light. Non-2xx/3xx
-- answers are counted by wrk itself (summary.errors.status).

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local ids = {}
local count = 0

function init(args)
   local path = args[1]
   if path == nil then
      error("usage: wrk ... -s read.lua <url> -- <ids file>")
   end
   for line in io.lines(path) do
      if #line > 0 then
         count = count + 1
         ids[count] = line
      end
   end
   if count == 0 then
      error("no ids in " .. path)
   end
   math.randomseed(os.time() * 1000 + (tid or 0))
   wrk.headers["Accept"] = "application/fhir+json"
end

function request()
   return wrk.format("GET", "/fhir/Patient/" .. ids[math.random(count)])
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
      '"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency.stdev,
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency:percentile(99.9)))
end
