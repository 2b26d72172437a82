-- wrk script of bench/run.py: one request shape (BENCH_METHOD, BENCH_BODY; headers
-- with -H), every status checked against BENCH_EXPECT, the thread stopped after
-- BENCH_MAX responses, one JSON line of figures at the end.
wrk.method = os.getenv("BENCH_METHOD")
wrk.body = os.getenv("BENCH_BODY") ~= "" and os.getenv("BENCH_BODY") or nil
local expected = tonumber(os.getenv("BENCH_EXPECT"))
local max = tonumber(os.getenv("BENCH_MAX"))
local threads = {}

function setup(thread) table.insert(threads, thread) end

function init(args) ok, bad = 0, 0 end

function response(status, headers, body)
  if status == expected then ok = ok + 1 else bad = bad + 1 end
  if ok + bad >= max then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do ok, bad = ok + t:get("ok"), bad + t:get("bad") end
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests": %d, "seconds": %.6f, "ok": %d, "bad": %d, ' ..
    '"errors": %d, "p99_ms": %.3f}\n', summary.requests, summary.duration / 1e6, ok, bad,
    e.connect + e.read + e.write + e.timeout, latency:percentile(99) / 1000))
end
