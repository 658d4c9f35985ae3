-- wrk script for scripts/load-web: counts responses by status in every thread and, at the end,
-- prints one summary line for the target (named by LOAD_WEB_LABEL):
--   RESULT <label> requests=… rps=… p50_ms=… p90_ms=… p99_ms=… max_ms=… non2xx=… errors=…
-- plus a loud warning when any response was not 2xx or any socket error happened: such a run
-- measured error pages, not the UI.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  non2xx = 0
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

local function ms(us)
  return string.format("%.1f", us / 1000)
end

function done(summary, latency, requests)
  local label = os.getenv("LOAD_WEB_LABEL") or "target"
  local bad = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    for status, n in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT %s requests=%d rps=%.1f p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s non2xx=%d errors=%d\n",
    label, summary.requests, summary.requests / secs,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency.max), bad, errors))
  local codes = {}
  for status, n in pairs(by_status) do
    table.insert(codes, string.format("%d×%d", status, n))
  end
  table.sort(codes)
  io.write(string.format("STATUSES %s %s\n", label, table.concat(codes, " ")))
  if bad > 0 then
    io.write(string.format(
      "!!! %s: %d of %d responses were not 2xx (%s): NOT A VALID MEASUREMENT\n",
      label, bad, summary.requests, table.concat(codes, " ")))
  end
  if errors > 0 then
    io.write(string.format(
      "!!! %s: %d socket errors (connect %d, read %d, write %d, timeout %d): NOT A VALID MEASUREMENT\n",
      label, errors, e.connect, e.read, e.write, e.timeout))
  end
end
