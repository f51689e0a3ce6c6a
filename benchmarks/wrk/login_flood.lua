-- A login flood: POST the login endpoint with a wrong password for one of many usernames, each
-- request from the next of `addresses` client addresses (198.18.0.0/15, the benchmarking range) in
-- X-Forwarded-For, as nginx would send it to an app server behind NUM_PROXIES=1.
-- Arguments: how many addresses (default 1000); the milliseconds each connection waits before each
-- of its requests (default 0: as fast as answered). At the end it prints "status N: count" lines.
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  addresses = tonumber(args[1] or "1000")
  pause = tonumber(args[2] or "0")
  sent = index * 7919 -- threads start apart
  statuses = {}
end

function request()
  sent = sent + 1
  local n = sent % addresses
  local address = string.format("198.18.%d.%d", math.floor(n / 256), n % 256)
  local body = string.format('{"username": "flood%d", "password": "not the password"}', sent % 100000)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = address,
  }, body)
end

function delay()
  return pause
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  for status, count in pairs(totals) do
    io.write(string.format("status %d: %d\n", status, count))
  end
end
