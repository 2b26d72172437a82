-- wrk script of the benchmark (bench/run.py): one request shape, bounded in count,
-- every response's status checked, and one JSON line of results at the end.
--
-- Set by bench/run.py through the environment:
--   BENCH_METHOD        GET, PUT...                 (default GET)
--   BENCH_BODY          request body                (default none)
--   BENCH_EXPECT        the expected status         (default 200)
--   BENCH_MAX_PER_THREAD stop a thread after this many responses (0: only the duration)
-- Headers are given to wrk with -H.

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY") or ""
local expected = tonumber(os.getenv("BENCH_EXPECT") or "200")
local max_per_thread = tonumber(os.getenv("BENCH_MAX_PER_THREAD") or "0")

wrk.method = method
if body ~= "" then
  wrk.body = body
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad = 0
  last_bad = 0
end

function response(status, headers, resp_body)
  if status == expected then
    ok = ok + 1
  else
    bad = bad + 1
    last_bad = status
  end
  if max_per_thread > 0 and ok + bad >= max_per_thread then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad, last = 0, 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("bad")
    if t:get("last_bad") ~= 0 then
      last = t:get("last_bad")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.6f, "ok": %d, "bad": %d, "last_bad_status": %d, ' ..
    '"socket_errors": %d, "timeouts": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, total_ok, total_bad, last,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
