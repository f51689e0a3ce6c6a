-- POST /api/auth/refresh/ along one refresh-cookie chain per wrk thread. Run with as many threads
-- as connections (-t N -c N): each thread then sends one request at a time, and each answer's
-- Set-Cookie carries the token its next request must send (an older one would be reuse).
-- Arguments: a file of refresh tokens (one line per thread), the csrftoken cookie, the X-CSRFToken
-- header, the page origin.
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
end

function request()
  return wrk.format("POST", "/api/auth/refresh/", {
    ["Content-Type"] = "application/json",
    ["Origin"] = origin,
    ["X-CSRFToken"] = csrf_header,
    ["Cookie"] = "csrftoken=" .. csrf_cookie .. "; refresh_token=" .. refresh,
  }, "{}")
end

function response(status, headers, body)
  -- wrk keeps one value per header name; a refresh answer sets exactly one cookie.
  local cookie = headers["Set-Cookie"]
  if status == 200 and cookie then
    refresh = cookie:match("refresh_token=([^;]+)")
  end
end
