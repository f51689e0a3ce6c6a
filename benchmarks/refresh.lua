-- wrk script for benchmarks/signing_algorithms.py: POST /api/auth/refresh/ as a browser would, each
-- thread (one connection) on its own session, carrying the rotated refresh cookie of each answer into
-- its next request. BENCH_SESSIONS names a file with one "csrf_token refresh_token origin" line per
-- thread. wrk shows only the last Set-Cookie header of an answer; a refresh sets only the refresh
-- cookie, and a lost one would show up as 401s in the STATUS line that done() prints.
local threads, count = {}, 0

function setup(thread)
  count = count + 1
  thread:set("index", count)
  table.insert(threads, thread)
end

function init(args)
  local n = 0
  for line in io.lines(os.getenv("BENCH_SESSIONS")) do
    n = n + 1
    if n == index then
      csrf, refresh, origin = line:match("(%S+) (%S+) (%S+)")
    end
  end
  statuses = {}
end

function request()
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Origin"] = origin,
    ["X-CSRFToken"] = csrf,
    ["Cookie"] = "csrftoken=" .. csrf .. "; refresh_token=" .. refresh,
  }, "{}")
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local cookie = headers["Set-Cookie"] or headers["set-cookie"]
  local value = cookie and cookie:match("refresh_token=([^;]+)")
  if value and value ~= "" and value ~= '""' then
    refresh = value
  end
end

function done(summary, latency, requests)
  local parts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      parts[#parts + 1] = string.format('"%s": %d', status, n)
    end
  end
  io.write("STATUS [{" .. table.concat(parts, "}, {") .. "}]\n")
end
