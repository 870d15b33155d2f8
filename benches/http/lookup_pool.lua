-- wrk script: POST /v1/citizens/lookup with 100 ids drawn from ids.txt per request (90%
-- present, 10% absent), 5,000 such requests formatted once at the start and sent in random
-- order, so that the client's Lua does no string work per request (pgbench draws its keys
-- in C): the two cores stay with the server. `lookup.lua` builds each request anew.
local ids = {}
for line in io.lines(os.getenv("JICHU_IDS") or "ids.txt") do ids[#ids + 1] = line end
math.randomseed(os.time() + 1)
local headers = { ["Content-Type"] = "application/json" }
local reqs = {}
for r = 1, 5000 do
  local batch = {}
  for i = 1, 100 do batch[i] = '"' .. ids[math.random(#ids)] .. '"' end
  reqs[r] = wrk.format("POST", "/v1/citizens/lookup", headers, '{"ids":[' .. table.concat(batch, ",") .. ']}')
end
local n = #reqs
request = function()
  return reqs[math.random(n)]
end
