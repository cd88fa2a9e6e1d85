-- wrk script: GET /api/card/balance/by/{number} over the loaded cards, at
-- random, as the demo POS user (the server caches the verified password, so
-- this measures the card path, not argon2).
local first = tonumber(os.getenv("BENCH_FIRST") or "6000000000000")
local count = tonumber(os.getenv("BENCH_CARDS") or "100000")
local auth = "Basic cG9zOnBvcy1kZW1v" -- pos:pos-demo

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or os.time())
end

request = function()
  local n = first + math.random(0, count - 1)
  return wrk.format("GET", "/api/card/balance/by/" .. string.format("%013d", n),
    { ["Authorization"] = auth })
end
-- wrk itself reports "Non-2xx or 3xx responses" when there are any.
