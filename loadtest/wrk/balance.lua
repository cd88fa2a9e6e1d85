-- GET balance-by-number over CARDS cards (7100000000000 + i), as pos.
local cards = tonumber(os.getenv("CARDS") or "100000")
local auth = "Basic " .. os.getenv("AUTH")
local counter = 0
local thread_seed = 0

function setup(thread)
  thread_seed = thread_seed + 1
  thread:set("seed", thread_seed)
end

function init(args)
  counter = seed * 7919
end

function request()
  counter = counter + 1
  local number = 7100000000000 + (counter * 2654435761) % cards
  return wrk.format("GET", "/api/card/balance/by/" .. string.format("%d", number), { ["Authorization"] = auth })
end
