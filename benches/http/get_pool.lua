-- wrk script: GET /v1/citizens/{id} with ids drawn from ids.txt (90% present, 10% absent),
-- the requests formatted once at the start, so that the client's Lua does no string work
-- per request (pgbench draws its keys in C): the two cores stay with the server. With
-- JICHU_KEY set, each request is a department's: `Authorization: Bearer $JICHU_KEY` and
-- `X-Purpose: $JICHU_PURPOSE` (percent-encoded; default `bench`).
local headers = nil
if os.getenv("JICHU_KEY") then
  headers = { ["Authorization"] = "Bearer " .. os.getenv("JICHU_KEY"), ["X-Purpose"] = os.getenv("JICHU_PURPOSE") or "bench" }
end
local reqs = {}
for line in io.lines(os.getenv("JICHU_IDS") or "ids.txt") do
  reqs[#reqs + 1] = wrk.format("GET", "/v1/citizens/" .. line, headers)
end
math.randomseed(os.time())
local n = #reqs
request = function()
  return reqs[math.random(n)]
end
