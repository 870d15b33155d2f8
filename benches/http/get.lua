-- wrk script: GET /v1/citizens/{id} with ids drawn from ids.txt (90% present, 10% absent).
local ids = {}
for line in io.lines(os.getenv("JICHU_IDS") or "ids.txt") do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/v1/citizens/" .. ids[math.random(#ids)])
end
