-- wrk script: POST /v1/citizens/lookup with 100 ids drawn from ids.txt per request.
local ids = {}
for line in io.lines(os.getenv("JICHU_IDS") or "ids.txt") do ids[#ids + 1] = line end
math.randomseed(os.time() + 1)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local batch = {}
  for i = 1, 100 do batch[i] = '"' .. ids[math.random(#ids)] .. '"' end
  return wrk.format(nil, "/v1/citizens/lookup", nil, '{"ids":[' .. table.concat(batch, ",") .. ']}')
end
