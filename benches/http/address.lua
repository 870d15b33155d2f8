-- wrk script: POST /v1/citizens/search with an address, as `jichu bench`'s workload asks:
-- half a road of the generator's, half a road and a house number. EXACT_TOTAL=1 in the
-- environment asks for the exact count (`exact_total`), as searches were answered before it.
local roads = { "中山路", "湖滨南路", "湖滨北路", "嘉禾路", "厦禾路", "思明南路", "思明北路", "鹭江道",
  "环岛路", "莲前西路", "莲前东路", "仙岳路", "吕岭路", "金尚路", "湖里大道", "枋湖路", "江头北路",
  "县后路", "海沧大道", "新阳路", "翁角路", "马銮路", "集美大道", "杏林湾路", "银江路", "滨水路",
  "同安大道", "环城南路", "西柯街", "翔安南路", "新店路", "民安大道", "文屏路" }
math.randomseed(os.time())
local headers = { ["Content-Type"] = "application/json" }
local extra = os.getenv("EXACT_TOTAL") == "1" and ',"exact_total":true' or ""
request = function()
  local a = roads[math.random(#roads)]
  if math.random() < 0.5 then a = a .. math.random(1, 399) .. "号" end
  return wrk.format("POST", "/v1/citizens/search", headers, '{"address":"' .. a .. '"' .. extra .. '}')
end
