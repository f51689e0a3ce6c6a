-- POST a JSON body (the first argument) to the URL's path, e.g. a login.
function init(args)
  body = args[1]
end

function request()
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
