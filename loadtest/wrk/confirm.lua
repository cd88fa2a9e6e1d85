-- POST purchase/confirm with a fresh PurchaseId per request (idempotency
-- records are written every time) over the first ACTIVE cards, as pos.
local active = tonumber(os.getenv("ACTIVE") or "1000")
local run = os.getenv("RUN_ID") or tostring(os.time())
local auth = "Basic " .. os.getenv("AUTH")
local counter = 0
local thread_seed = 0

function setup(thread)
  thread_seed = thread_seed + 1
  thread:set("seed", thread_seed)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local number = 7100000000000 + (counter * 7 + seed * 131) % active
  local body = string.format('{"Number":"%d","PurchaseId":"lt-%s-%d-%d","Amount":100}', number, run, seed, counter)
  return wrk.format("POST", "/api/purchase/confirm",
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end
