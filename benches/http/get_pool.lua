-- wrk script: GET /v1/citizens/{id} with ids drawn from ids.txt (90% present, 10% absent),
-- the requests formatted once at the start, so that the client's Lua does no string work
-- per request (pgbench draws its keys in C): the two cores stay with the server.
local reqs = {}
for line in io.lines(os.getenv("JICHU_IDS") or "ids.txt") do
  reqs[#reqs + 1] = wrk.format("GET", "/v1/citizens/" .. line)
end
math.randomseed(os.time())
local n = #reqs
request = function()
  return reqs[math.random(n)]
end
