-- wrk script: POST /v1/citizens/near with k = 10 at random points of the generator's extent.
math.randomseed(os.time() + 2)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local lon = 117.90 + math.random() * 0.50
  local lat = 24.45 + math.random() * 0.30
  return wrk.format(nil, "/v1/citizens/near", nil, string.format('{"lon":%.6f,"lat":%.6f,"k":10,"fields":["name"]}', lon, lat))
end
