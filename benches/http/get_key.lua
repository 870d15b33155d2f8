-- wrk script: GET /v1/citizens/{id} as a department: `Authorization: Bearer $JICHU_KEY` and
-- `X-Purpose: $JICHU_PURPOSE` (percent-encoded), requests formatted once at the start as in
-- get_pool.lua. 90% present, 10% absent ids from ids.txt.
local reqs = {}
local headers = { ["Authorization"] = "Bearer " .. os.getenv("JICHU_KEY"), ["X-Purpose"] = os.getenv("JICHU_PURPOSE") or "bench" }
for line in io.lines(os.getenv("JICHU_IDS") or "ids.txt") do
  reqs[#reqs + 1] = wrk.format("GET", "/v1/citizens/" .. line, headers)
end
math.randomseed(os.time())
local n = #reqs
request = function()
  return reqs[math.random(n)]
end
