-- POST a refresh endpoint along one refresh-cookie chain per wrk thread. Run with as many threads
-- as connections (-t N -c N): each thread then sends one request at a time, and each answer's
-- Set-Cookie carries the token its next request must send (an older one would be reuse).
-- Arguments: a file of refresh tokens (one line per thread), the csrftoken cookie, the X-CSRFToken
-- header, the page origin; then, optionally, the endpoint's path (default /api/auth/refresh/) and
-- the refresh cookie's name (default refresh_token).
local made = 0

function setup(thread)
  made = made + 1
  thread:set("index", made)
end

function init(args)
  local tokens = {}
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  refresh, csrf_cookie, csrf_header, origin = tokens[index], args[2], args[3], args[4]
  path = args[5] or "/api/auth/refresh/"
  cookie_name = args[6] or "refresh_token"
  -- The name as a Lua pattern: punctuation such as "-" is magic there.
  cookie_pattern = cookie_name:gsub("%p", "%%%0") .. "=([^;]+)"
end

function request()
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Origin"] = origin,
    ["X-CSRFToken"] = csrf_header,
    ["Cookie"] = "csrftoken=" .. csrf_cookie .. "; " .. cookie_name .. "=" .. refresh,
  }, "{}")
end

function response(status, headers, body)
  -- wrk keeps one value per header name, the last: the refresh cookie must be the answer's last
  -- Set-Cookie (this project sets only that one; dj-rest-auth sets the access cookie, then it).
  local cookie = headers["Set-Cookie"]
  if status == 200 and cookie then
    refresh = cookie:match(cookie_pattern) or refresh
  end
end
