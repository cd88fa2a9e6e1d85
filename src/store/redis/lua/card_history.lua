#!lua flags=no-writes
-- One consistent page of a card's history, newest first: LLEN and LRANGE in
-- one script so that an append in between cannot shift the page.
-- KEYS[1] the history list; ARGV[1] exclusive upper bound ('' = none);
-- ARGV[2] limit. Returns {start, e_start, ..., e_end-1} (oldest first).
local len = redis.call('LLEN', KEYS[1])
local stop = len
if ARGV[1] ~= '' then
  local b = tonumber(ARGV[1])
  if b < stop then
    stop = b
  end
end
local limit = tonumber(ARGV[2])
local start = stop - limit
if start < 0 then
  start = 0
end
local out = {start}
if stop > start then
  local items = redis.call('LRANGE', KEYS[1], start, stop - 1)
  for i = 1, #items do
    out[#out + 1] = items[i]
  end
end
return out
