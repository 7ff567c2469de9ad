-- wrk script: POST /fhir/Patient with the body of a file (the official Patient example).
--
--   wrk -t2 -c32 -d20s --latency -s bench/lua/create.lua http://127.0.0.1:8080 \
--       -- tests/data/fhir-r4-examples/Patient-example.json
--
-- Every response's status is counted per thread (response() callback), so that the
-- number of 201s can be compared with the rows the database gained.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

statuses = {}
local req

function init(args)
   local path = args[1]
   if path == nil then
      error("usage: wrk ... -s create.lua <url> -- <json file>")
   end
   local f = assert(io.open(path, "rb"))
   local body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.path = "/fhir/Patient"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/fhir+json"
   wrk.headers["Accept"] = "application/fhir+json"
   req = wrk.format()
end

function request()
   return req
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local merged = {}
   for _, thread in ipairs(threads) do
      local s = thread:get("statuses")
      if s ~= nil then
         for code, n in pairs(s) do
            merged[code] = (merged[code] or 0) + n
         end
      end
   end
   local parts = {}
   for code, n in pairs(merged) do
      table.insert(parts, string.format('"%d":%d', code, n))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"statuses":{%s},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
      '"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      table.concat(parts, ","),
      latency.min, latency.mean, latency.max, latency.stdev,
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency:percentile(99.9)))
end
